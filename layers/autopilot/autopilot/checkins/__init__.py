"""Check-ins, streaks, streak freezes, make-ups (补签), points and tiers."""
