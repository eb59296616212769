"""Signatures as Standard Webhooks defines them, checked against the specification's example."""

from __future__ import annotations

import base64
import hashlib
import hmac

from app.webhooks import signing

# The example of the Standard Webhooks specification (and of its reference libraries).
SPEC_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_of_the_specifications_example() -> None:
    assert signing.sign(SPEC_KEY, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_a_signature_is_an_hmac_of_id_timestamp_and_body_with_the_decoded_key() -> None:
    key = signing.new_key()
    secret = base64.b64decode(key.removeprefix("whsec_"))
    expected = hmac.new(secret, b"m1.1700000000.{}", hashlib.sha256).digest()

    assert signing.sign(key, "m1", 1700000000, b"{}") == "v1," + base64.b64encode(expected).decode()


def test_new_keys_are_prefixed_random_32_bytes() -> None:
    first, second = signing.new_key(), signing.new_key()

    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


def test_two_keys_give_two_space_separated_signatures() -> None:
    old, new = signing.new_key(), signing.new_key()

    header = signing.headers([new, old], "m1", 1700000000, b"{}")["webhook-signature"]

    assert header.split(" ") == [
        signing.sign(new, "m1", 1700000000, b"{}"),
        signing.sign(old, "m1", 1700000000, b"{}"),
    ]
