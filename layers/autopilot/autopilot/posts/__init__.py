"""Scheduled posts: content rotation, template rendering, the post log."""
