"""Attachments to Poe: data URLs and links, the upload cache, the uploader, and the guard for
links the gateway fetches itself."""
