"""EcomPointer-style inventory API built on tenantkit."""
