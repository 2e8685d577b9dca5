"""Signature and URL-validation maths, against the vectors in shared/zoom/FACTS.md."""

from service.webhook.signature import SignatureCheck, expected_signature, url_validation, verify

SECRET = "test_secret_token"
OFFICIAL_STARTED = (
    b'{"event":"meeting.started","event_ts":1626230691572,"payload":{"account_id":'
    b'"Wk9PTV9BQ0NPVU5UX0lE","object":{"id":"1234567890","uuid":"Wk9PTV9NRUVUSU5HX0lE",'
    b'"host_id":"Wk9PTV9VU0VSX0lE","topic":"My Meeting","type":8,"start_time":'
    b'"2021-07-13T21:44:51Z","timezone":"America/Los_Angeles","duration":60}}}'
)


def check(**overrides) -> SignatureCheck:
    arguments = {
        "secrets": [SECRET],
        "timestamp": "1739923528",
        "signature": expected_signature(SECRET, "1739923528", OFFICIAL_STARTED),
        "body": OFFICIAL_STARTED,
        "now": 1739923528,
        "tolerance_seconds": 7200,
        "max_future_seconds": 300,
    }
    arguments.update(overrides)
    return verify(**arguments)


def test_signature_matches_the_published_vector():
    expected = "v0=57ccf13346ceaaa91ce630c8ceaeeef4f527a973a0112245575422f75f9163ba"
    assert expected_signature(SECRET, "1739923528", OFFICIAL_STARTED) == expected


def test_signature_is_over_utf8_bytes_of_non_ascii_bodies():
    body = '{"event":"meeting.ended","payload":{"object":{"topic":"Café 🚒"}}}'.encode()
    expected = "v0=d1d3cf44160a99a818962ae5263475b09a5cd234234de4b65ad81ead82c58a98"
    assert expected_signature(SECRET, "1739923528", body) == expected


def test_url_validation_matches_the_published_vector():
    assert url_validation(SECRET, "qgg8vlvZRS6UYooatFL8Aw") == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": "4efea922935c335d972476de138d2208a0d46ab28c79ee592d497a1b216419b8",
    }


def test_valid_signature_passes():
    assert check() is SignatureCheck.OK


def test_any_configured_secret_passes_during_rotation():
    assert check(secrets=["new-secret", SECRET]) is SignatureCheck.OK


def test_tampered_body_fails():
    assert check(body=OFFICIAL_STARTED.replace(b"My Meeting", b"My Meetinh")) is (
        SignatureCheck.MISMATCH
    )


def test_non_ascii_signature_header_fails_without_raising():
    assert check(signature="v0=é") is SignatureCheck.MISMATCH


def test_timestamp_at_the_edge_of_the_window_passes_and_past_it_fails():
    assert check(now=1739923528 + 7200) is SignatureCheck.OK
    assert check(now=1739923528 + 7201) is SignatureCheck.STALE
    assert check(now=1739923528 - 300) is SignatureCheck.OK
    assert check(now=1739923528 - 301) is SignatureCheck.FUTURE


def test_missing_and_malformed_headers_fail():
    assert check(signature=None) is SignatureCheck.MISSING_HEADERS
    assert check(timestamp="") is SignatureCheck.MISSING_HEADERS
    assert check(timestamp="17399.23528") is SignatureCheck.MALFORMED_TIMESTAMP
    assert check(timestamp="１２３") is SignatureCheck.MALFORMED_TIMESTAMP
