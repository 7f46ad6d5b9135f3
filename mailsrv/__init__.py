"""mailsrv: a complete mail server on Twisted."""
