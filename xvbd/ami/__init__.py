"""AMI client (Asterisk Manager Interface): one connection per node."""
