"""The test suite: one folder per aiwgd package; shared helpers live here at the top."""
