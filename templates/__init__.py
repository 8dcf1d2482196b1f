"""The default theme (installed as ``digest.templates``); users override single files by folder."""
