"""Test support: fault-injecting filesystem, fake clock, seeded simulations."""
