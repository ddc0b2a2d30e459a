"""The loop builder: loops and their versions, the editor pages, import/export and git sync."""
