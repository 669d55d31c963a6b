"""What only the tests need on top of `harness`: finding a broker, or skipping (failing under CI)."""
