"""What users take away: the project search index, exports for editors and highlight reels."""
