"""The offline engine: the real program under recording mocks, and the plan it prints."""
