"""What the tests share, one module per thing: paths and the reference day (paths), commands in a real
subprocess (cli), ports and patience (ports), SMTP servers (smtp), `digest serve`/`digest preview` on a
port they bound (served), headless Chromium (browser), a newsroom in a temporary folder (newsroom),
messages as a mail client reads them (mail), items and editions made by hand (items), a local HTTP server
for feeds (feed_server). tests/conftest.py builds its fixtures from these; test modules import them
from here, never from conftest."""
