"""The audience: who receives which rubrics, in which language (subscriber store, import/export, tokens).

Filled by the delivery work; the package exists so that the layout is the one the project keeps.
"""
