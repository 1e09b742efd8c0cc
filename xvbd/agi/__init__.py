"""FastAGI: Asterisk's side of every inbound call, spoken over TCP."""
