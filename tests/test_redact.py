"""URL redaction: no credential of any shape survives, what is not secret stays readable."""

from __future__ import annotations

import urllib.parse

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.redact import redact_url

secret = st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=6, max_size=16).map(lambda s: "S" + s)
param = st.sampled_from(["token", "access_token", "api_key", "apiKey", "X-Amz-Signature", "sig", "password", "p",
                         "client_secret", "auth", "sessionid", "code"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["http", "https", "kafka"]), st.text("abcdefgh", min_size=1, max_size=8), secret, secret,
       param, st.sampled_from(["/", "/api/v2", "/services/T/B", ""]), st.booleans())
def test_userinfo_and_secret_parameters_never_survive(scheme, user, password, value, name, path, in_fragment):
    query = urllib.parse.urlencode({"team": "ml", name: value})
    url = f"{scheme}://{user}:{urllib.parse.quote(password, safe='')}@host.example:8086{path}" + (
        f"#{query}" if in_fragment else f"?{query}")
    shown = redact_url(url)
    assert password not in shown and urllib.parse.quote(password, safe="") not in shown and value not in shown
    assert "host.example:8086" in shown and "team=ml" in shown and shown.split("//", 1)[1].startswith("***@")


def test_plain_urls_are_unchanged_and_garbage_is_masked():
    for url in ("https://hooks.example/alerts?team=ml", "http://127.0.0.1:8086", "http://h/p?q=1#frag"):
        assert redact_url(url) == url
    assert redact_url("http://[::1") == "***"
