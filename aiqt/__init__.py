"""AIQT command-line entry points and the signed REST client."""
