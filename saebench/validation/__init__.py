"""Checks made before any work: settings (:mod:`.settings`), output paths (:mod:`.outputs`),
finite numbers (:mod:`.finite`) and resources (:mod:`.resources`). No torch at import."""
