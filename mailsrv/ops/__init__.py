"""The application layer: what a user or an admin can do, independent of any protocol.

Adapters (``imapserver/``, ``smtpserver/``, ``web/``, ``control.py`` and the ``cli*`` modules) translate their
protocol into calls of these functions and their typed results and errors back into protocol replies. Nothing
here knows an SMTP reply code, an IMAP response or an HTTP status. Modules, one concern each: ``login``,
``delivery``, ``submission``, ``mail``, ``search``, ``accounts``, ``domains``, ``aliases``, ``rules``,
``tlspubkeys``, ``queue``, ``events``.

Request and result types are ``msgspec.Struct`` classes: strict decoding, fast encoding, and JSON Schema
generation (``msgspec.json.schema``) for the web API's OpenAPI document. Errors derive from
:class:`mailsrv.ops.errors.OpsError`.
"""
