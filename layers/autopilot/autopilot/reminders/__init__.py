"""Reminders (提醒): who to remind, once, at a decent hour, found without scanning."""
