"""E-mail: addresses, the mails xvbd writes (``compose``), and the outbox's sender."""
