"""DNS and mail authentication.

- `resolver.Resolver`: the one resolver (dnspython in the reactor's thread pool, bounded TTL
  cache, `[dns]` nameservers). Async methods for the reactor, `*_sync` ones for code that
  already runs in a thread. Errors: `DNSNotFound` (NXDOMAIN) vs `DNSTemporaryError`.
- `authresults.MailAuthenticator.evaluate(message, mail_from, helo, remote_ip)`: SPF
  (`spf.py`, pyspf), DKIM (`dkim.py`, dkimpy) and DMARC (`dmarc.py`, public suffix list) in
  one pool thread; returns `AuthResults` with the verdicts, `verified_domains`, the DMARC
  `disposition` ("none"/"quarantine"/"reject") and `header_value()` for
  `Authentication-Results:` (RFC 8601).
- `dkim.sign(message, domain, selector, private_pem) -> b"DKIM-Signature: ...\\r\\n"` and
  `dkim.generate_dkim_key("ed25519"|"rsa") -> (pkcs8_pem, txt_record_value)`.
- `mtasts.MTASTSPolicies.policy(domain)`: MTA-STS (RFC 8461) policies for queue delivery.

Every check returns a verdict (temperror/permerror) for bad input or DNS trouble; nothing
here raises to the SMTP server for what a peer or a zone does.
"""
