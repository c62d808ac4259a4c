# The browser check is a script run by `make test-browser` (it needs chromium), not a pytest module.
collect_ignore_glob = ["*"]
