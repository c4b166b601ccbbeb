"""Users, roles, sign-in and API keys of the hub.

`permissions` contains the one table from roles to permissions; `deps` turns it into
FastAPI dependencies that every route declares; `service` stores users, refresh
tokens and API keys; `tokens`, `passwords` and `totp` wrap PyJWT, argon2-cffi and
pyotp so that their errors leave as this package's own.
"""
