# Marks the repository root for pytest so that `import data` and `import melodi_hk` resolve.
