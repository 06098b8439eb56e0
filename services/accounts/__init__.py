"""People's accounts: sign-in with password (+ TOTP), lock-out, sessions, and the lead's management."""
