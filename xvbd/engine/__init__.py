"""The call engine: what a call does, driven through an AGI channel, never bytes."""
