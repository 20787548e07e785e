"""Markup planted in the report tests' data, to prove the page shows it as text and never runs it."""

XSS_PROMPT = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
XSS_ACCOUNT = "acct-<b onmouseover=alert(1)>x</b>"
