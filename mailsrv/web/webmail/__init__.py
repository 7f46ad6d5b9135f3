"""The webmail interface (issue 15): `resource.webmail_resource` is its site entry."""
