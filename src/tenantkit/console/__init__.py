"""The tenant administration console: a small single-page app served from the package."""
