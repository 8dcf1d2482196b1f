"""A real IMAP server for `digest bounces fetch`: Dovecot (Debian `dovecot-imapd`, never started as the
system's service), run by the test in the foreground with a configuration of its own in a temporary
folder: one static login, Maildir storage, plain IMAP on 127.0.0.1.

Dovecot cannot bind port 0: it is started on a free port, recognised by a greeting of its own, and
started again on another port if another process took that one first. Run as root, its login process
runs as `dovenull` and the mail as `dovecot` (the package makes both users); as anyone else, as them."""
from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from support.ports import PATIENCE, free_port

DOVECOT = "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "imap-secret-for-tests"


def available() -> bool:
    return os.path.exists(DOVECOT)


class Dovecot:
    def __init__(self) -> None:
        # Its sockets live here: a short path (a socket's is limited to 108 bytes) that its unprivileged
        # processes can reach, which pytest's private tmp folder is not.
        self.folder = Path(tempfile.mkdtemp(prefix="digest-imap-"))
        os.chmod(self.folder, 0o755)
        self.name = f"imap-{uuid.uuid4().hex[:12]}"
        root = os.geteuid() == 0
        login = "dovenull" if root else pwd.getpwuid(os.geteuid()).pw_name
        internal = "dovecot" if root else login
        group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
        home = self.folder / "home"
        home.mkdir()
        if root:
            shutil.chown(home, internal, group)
        self.config = self.folder / "dovecot.conf"
        for _ in range(5):
            self.port = free_port()
            self.config.write_text(f"""
base_dir = {self.folder}/run
state_dir = {self.folder}/state
log_path = {self.folder}/log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
login_greeting = {self.name}
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = {pwd.getpwnam(internal).pw_uid}
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={internal} gid={group} home={home}/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""", encoding="utf-8")
            self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE)
            if self._started():
                return
        raise RuntimeError("dovecot found no free port five times in a row")

    def _started(self) -> bool:
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                if self.process.stderr:
                    self.process.stderr.close()
                if "in use" in error:
                    return False
                raise RuntimeError(f"dovecot exited: {error}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    if self.name in sock.recv(512).decode(errors="replace"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("dovecot did not start")

    def client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=PATIENCE)
        client.login(USER, PASSWORD)
        return client

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.folder, ignore_errors=True)
