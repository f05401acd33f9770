"""The one table from domain errors to Tencent Cloud API 3.0 error codes.

An API 3.0 error reply is `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}` with
HTTP 200. Lookup walks the exception's class hierarchy, so a subclass without a row uses its
parent's. A BatchError may carry a `reason`, appended to its class's code: ResourceNotFound
with reason "Job" is `ResourceNotFound.Job`.
"""

from __future__ import annotations

from ... import errors as e

INTERNAL_ERROR = "InternalError"

CODES: dict[type, str] = {
    e.BrokerError: INTERNAL_ERROR,
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
    # Batch
    e.ResourceNotFound: "ResourceNotFound",
    e.ResourceInUse: "ResourceInUse",
    e.UnsupportedOperation: "UnsupportedOperation",
    e.LimitExceeded: "LimitExceeded",
    e.InvalidBatchParameter: "InvalidParameter",
    e.InvalidBatchParameterValue: "InvalidParameterValue",
    e.InvalidFilter: "InvalidFilter",
    e.EnvIdAndComputeEnvConflict: "AllowedOneAttributeInEnvIdAndComputeEnv",
    e.InvalidZone: "InvalidZone",  # reason MismatchRegion → InvalidZone.MismatchRegion
    e.AtLeastOneAttribute: "InvalidParameterAtLeastOneAttribute",
}


def code_for(exc: e.BrokerError) -> str:
    for cls in type(exc).__mro__:
        code = CODES.get(cls)
        if code is not None:
            break
    else:
        code = INTERNAL_ERROR
    reason = getattr(exc, "reason", "") if isinstance(exc, e.BatchError) else ""
    if reason and code != INTERNAL_ERROR:
        return f"{code}.{reason}"
    return code


def error_response(code: str, message: str, request_id: str) -> dict:
    return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}


def error_reply(exc: e.BrokerError, request_id: str) -> dict:
    return error_response(code_for(exc), exc.message, request_id)
