"""The one table from domain errors to Tencent Cloud API 3.0 error codes.

An API 3.0 error reply is `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}` with
HTTP 200. `COMMON` holds the codes every API 3.0 product shares (request shape, authentication,
the common resource codes); a service adds rows for its own errors (`Service.errors`), and
`Api3Protocol` merges them all into one `ErrorTable`, refusing a class mapped two ways.

Lookup walks the exception's class hierarchy, so a subclass without a row uses its parent's. An
error may carry a `reason` (Batch's do), appended to its class's code: ResourceNotFound with
reason "Job" is `ResourceNotFound.Job`. InvalidParameter messages are worded with the service's
names for the engine's neutral field names (`Service.fields`).
"""

from __future__ import annotations

from typing import Mapping

from ... import errors as e

INTERNAL_ERROR = "InternalError"

COMMON: Mapping[type, str] = {
    e.BrokerError: INTERNAL_ERROR,
    e.InternalError: INTERNAL_ERROR,
    # request shape
    e.MalformedRequest: "InvalidParameter",
    e.MethodNotAllowed: "UnsupportedOperation",
    e.UnknownAction: "InvalidAction",
    e.UnsupportedVersion: "NoSuchVersion",
    e.InvalidParameter: "InvalidParameter",
    e.MissingParameter: "MissingParameter",
    e.ParameterWrongType: "InvalidParameter",
    e.ParameterOutOfRange: "InvalidParameterValue",
    # authentication
    e.AuthFailure: "AuthFailure.SignatureFailure",
    e.InvalidAuthorization: "AuthFailure.InvalidAuthorization",
    e.UnknownSecretId: "AuthFailure.SecretIdNotFound",
    e.SignatureMismatch: "AuthFailure.SignatureFailure",
    e.SignatureExpired: "AuthFailure.SignatureExpire",
    # common resource codes (a `reason` names the kind: ResourceNotFound.Job)
    e.ResourceNotFound: "ResourceNotFound",
    e.ResourceInUse: "ResourceInUse",
    e.UnsupportedOperation: "UnsupportedOperation",  # also an action a service declares but does not offer
    e.LimitExceeded: "LimitExceeded",
}


def merged(*extra: Mapping[type, str]) -> dict[type, str]:
    """COMMON plus each service's rows; a class given two different codes is a bug."""
    codes = dict(COMMON)
    for rows in extra:
        for cls, code in rows.items():
            if codes.get(cls, code) != code:
                raise ValueError(f"API 3.0 error {cls.__name__} is mapped to both {codes[cls]} and {code}")
            codes[cls] = code
    return codes


def code_for(exc: e.BrokerError, codes: Mapping[type, str] = COMMON) -> str:
    for cls in type(exc).__mro__:
        code = codes.get(cls)
        if code is not None:
            break
    else:
        code = INTERNAL_ERROR
    reason = getattr(exc, "reason", "")
    if reason and code != INTERNAL_ERROR:
        return f"{code}.{reason}"
    return code


def message_for(exc: e.BrokerError, fields: Mapping[str, str]) -> str:
    """The error's text, naming a parameter as the service calls it."""
    return exc.text(fields) if isinstance(exc, e.InvalidParameter) else exc.message


def error_response(code: str, message: str, request_id: str) -> dict:
    return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}


class ErrorTable:
    """The merged table of one `Api3Protocol`: COMMON and its services' rows."""

    def __init__(self, *extra: Mapping[type, str]):
        self.codes = merged(*extra)

    def code_for(self, exc: e.BrokerError) -> str:
        return code_for(exc, self.codes)

    def reply(self, exc: e.BrokerError, request_id: str, fields: Mapping[str, str]) -> tuple[dict, str]:
        """(the error envelope, its code)."""
        code = self.code_for(exc)
        return error_response(code, message_for(exc, fields), request_id), code
