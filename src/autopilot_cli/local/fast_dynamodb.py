"""DynamoDB data-plane calls answered by moto without the HTTP round trip (local runs only).

Under moto every DynamoDB call still travels the whole HTTP path: botocore
signs the request, moto rebuilds a werkzeug request from it, re-parses the
JSON body against the operation's input shape, runs the backend, walks the
operation's output shape to serialise the result back to JSON, and botocore
parses that JSON again. In a simulated month that round trip cost more than
moto's DynamoDB backend itself: about half of every check-in.

While installed, a ``before-call.dynamodb`` hook answers the data-plane
operations (:data:`FAST_OPERATIONS`) below botocore's HTTP layer, the way
botocore's own ``Stubber`` does:

* the request is parsed by moto's own request parser from the body botocore
  serialised (after botocore validated the parameters, as always), and the
  same ``DynamoHandler`` method runs against the same backend;
* moto's answer for a DynamoDB result is already the wire dict, so it is
  dumped with :func:`json.dumps` (blobs base64-encoded, as moto's serialiser
  does) instead of being walked member by member; errors are serialised by
  moto exactly as over HTTP;
* botocore's own response parser turns the answer into the parsed response
  (plus modelled error fields such as ``CancellationReasons``), so callers
  get the same dicts and the same exception classes.

Within one request, moto parses the same expression several times: a
transaction's condition once to validate the request, once to check it and
once more in ``Table.put_item``; an update expression once to validate and once
to apply. While a request is answered here, those parses are memoised for that
request only, keyed by the expression with its attribute names and values (a
parse depends on nothing else; a failed parse is never memoised, so errors are
raised as before). Condition trees are only evaluated, never modified, and
moto deep-copies an update expression's tree before validating it; here its
validator gets a fresh parse of the same text instead (the same tree, cheaper
than the deep copy). The first three of moto's ten update validators only check
the expression's structure against its attribute names and the table's key
attributes (clause counts, overlapping paths, no key updates) and never change
the tree: once they passed for that (expression, names, key attributes), later
validations skip them.

The request is still counted by :mod:`autopilot_cli.metering` (it never
reaches ``before-send``, where the counter normally sees it). Everything else
(control-plane DynamoDB calls, other services, moto's IAM-auth mode, a
stopped moto mock, a client whose endpoint moto does not mock) takes the
stock path. ``tests/integration/test_fast_dynamodb.py``
runs the same operations both ways, errors included, and compares the parsed
responses, the raised errors, the tables and the request counts.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import threading
from typing import Any

import botocore.handlers
from botocore.awsrequest import AWSResponse
from botocore.endpoint import convert_to_response_dict
from botocore.parsers import create_parser
from moto import settings
from moto.core.botocore_stubber import MockRawResponse
from moto.core.exceptions import ServiceException
from moto.core.models import botocore_stubber
from moto.core.parse import PROTOCOL_PARSERS
from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import camelcase_to_underscores, get_service_model, utcnow
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.parsing.validators import (
    ActionCountValidator,
    OverlappingPathsValidator,
    UpdateExpressionValidator,
    UpdateHashRangeKeyValidator,
)
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.dynamodb.urls import url_bases
from moto.utilities.aws_headers import gen_amz_crc32
from moto.utilities.utils import get_partition
from werkzeug.exceptions import HTTPException
from werkzeug.http import http_date

from autopilot_cli import metering
from autopilot_cli.local.patching import ClassPatches

__all__ = ["FAST_OPERATIONS", "fast_dynamodb", "install", "is_installed", "uninstall"]

#: Operations answered below HTTP: their results are plain wire dicts.
FAST_OPERATIONS = frozenset(
    {
        "BatchGetItem",
        "BatchWriteItem",
        "DeleteItem",
        "GetItem",
        "PutItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "TransactWriteItems",
        "UpdateItem",
    }
)

_EVENT = "before-call.dynamodb"
# moto's default: IAM authentication off. With it on, requests take the stock path.
_NO_AUTH = float("inf")
# moto answers only the DynamoDB endpoints it mocks; a client pointed elsewhere
# (``endpoint_url``, ``AWS_ENDPOINT_URL``) goes to the network, so it must here too.
_MOCKED_URL = re.compile("|".join(f"(?:{base})" for base in url_bases))


_original_condition_parse = ConditionExpressionParser.parse
_original_update_make = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
# The parses of the request being answered (None outside a fast-path request).
_memo = threading.local()


def _frozen(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _condition_parse(self: ConditionExpressionParser) -> Any:
    memo = getattr(_memo, "parses", None)
    if memo is None:
        return _original_condition_parse(self)
    key = (
        "condition",
        self.condition_expression,
        _frozen(self.expression_attribute_names),
        _frozen(self.expression_attribute_values),
    )
    hit = memo.get(key)
    if hit is not None:
        tree, names_found, values_found = hit
        self.expr_attr_names_found = list(names_found)
        self.expr_attr_values_found = list(values_found)
        return tree
    tree = _original_condition_parse(self)
    memo[key] = (tree, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
    return tree


def _update_make(cls: type[UpdateExpressionParser], expression_str: Any) -> Any:
    memo = getattr(_memo, "parses", None)
    if memo is None or not isinstance(expression_str, str):
        return _original_update_make(cls, expression_str)
    key = ("update", expression_str)
    tree = memo.get(key)
    if tree is None:
        tree = memo[key] = _original_update_make(cls, expression_str)
        memo[("source", id(tree))] = expression_str  # the tree lives as long as the memo
    return tree


_original_validator_init = UpdateExpressionValidator.__init__
_original_validate = UpdateExpressionValidator.validate
# moto's structure-only validators, in the order get_ast_processors lists them.
_STRUCTURAL = (ActionCountValidator, OverlappingPathsValidator, UpdateHashRangeKeyValidator)
# (expression, names, key attributes) whose structural validation passed.
_structure_passed: set[tuple[str, str, tuple[str, ...]]] = set()
_STRUCTURE_MEMO_LIMIT = 10_000


def _validator_init(
    self: UpdateExpressionValidator,
    expression: Any,
    expression_attribute_names: Any,
    expression_attribute_values: Any,
    item: Any,
    table: Any,
) -> None:
    memo = getattr(_memo, "parses", None)
    source = None if memo is None else memo.get(("source", id(expression)))
    if source is None:
        _original_validator_init(
            self, expression, expression_attribute_names, expression_attribute_values, item, table
        )
        return
    # Validator.__init__, with a fresh parse of the source for its deep copy.
    self.expression_attribute_names = expression_attribute_names
    self.expression_attribute_values = expression_attribute_values
    self.item = item
    self.table = table
    self.processors = self.get_ast_processors()
    self.node_to_validate = _original_update_make(UpdateExpressionParser, source)
    self._autopilot_structure_key = (  # type: ignore[attr-defined]
        source,
        _frozen(expression_attribute_names),
        tuple(table.table_key_attrs),
    )


def _validate(self: UpdateExpressionValidator) -> Any:
    key = getattr(self, "_autopilot_structure_key", None)
    structural = tuple(type(p) for p in self.processors[:3]) == _STRUCTURAL
    if key is None or not structural:
        return _original_validate(self)
    node = self.node_to_validate
    start = 3 if key in _structure_passed else 0
    for index in range(start, len(self.processors)):
        node = self.processors[index].traverse(node)
        if index == 2:
            if len(_structure_passed) >= _STRUCTURE_MEMO_LIMIT:
                _structure_passed.clear()
            _structure_passed.add(key)
    return node


def _blob(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("utf-8")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@functools.cache
def _moto_operation(name: str) -> Any:
    return get_service_model("dynamodb").operation_model(name)


@functools.cache
def _response_parser(protocol: str) -> Any:
    return create_parser(protocol)


def _account(handler: BaseResponse, request_signer: Any) -> str:
    """moto's account resolution (``get_current_account``) from the unsigned request."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if "x-moto-account-id" in handler.headers:
        return str(handler.headers["x-moto-account-id"])
    from moto.iam.models import get_account_id_from

    credentials = getattr(request_signer, "_credentials", None)
    access_key = getattr(credentials, "access_key", None) or ""
    return get_account_id_from(access_key)


_BACKEND_LOCK = threading.RLock()


def _answer(operation_name: str, params: dict[str, Any], request_signer: Any) -> Any:
    """(status, headers, body) exactly as moto's ``DynamoHandler.call_action`` answers."""
    handler = DynamoHandler()
    headers = {str(k): v for k, v in params["headers"].items()}
    handler.headers = headers
    handler.querystring = {}
    handler.uri_match = {}
    handler.method = params.get("method", "POST")
    handler.region = request_signer.region_name
    handler.partition = get_partition(handler.region)
    handler.current_account = _account(handler, request_signer)
    handler.response_headers = {"server": "amazon.com", "date": http_date(utcnow())}
    body = params["body"]
    parser = PROTOCOL_PARSERS["json"](
        _moto_operation(operation_name), map_type=DynamoHandler.PROTOCOL_PARSER_MAP_TYPE
    )
    parsed = parser.parse(
        {
            "method": handler.method,
            "values": {},
            "headers": headers,
            "body": body if isinstance(body, bytes) else str(body).encode("utf-8"),
            "url_path": "/",
            "url_params": {},
        }
    )
    handler.params = parsed
    handler.body = parsed  # DynamoHandler.call_action reads the parsed params as its body
    response_headers = handler.response_headers
    _memo.parses = {}
    try:
        # moto's in-process backend is not thread-safe (a Query iterating a partition
        # while another thread writes to it fails with "dictionary changed size"):
        # one request at a time reaches it, as each item is serialised in DynamoDB.
        with _BACKEND_LOCK:
            response = getattr(handler, camelcase_to_underscores(operation_name))()
    except ServiceException as error:
        status, error_headers, error_body = handler.serialized(ActionResult(error))
        error_headers["status"] = status
        response = error_body, error_headers
    except HTTPException as http_error:
        raised_headers: dict[str, Any] = dict(http_error.get_headers() or [])
        raised_headers["status"] = http_error.code
        response = http_error.description, raised_headers
    finally:
        _memo.parses = None
    if type(response) is DynamoResult:
        status = 200
        response_headers["Content-Type"] = "application/x-amz-json-1.0"
        body_text: Any = json.dumps(response.result, default=_blob)
    elif isinstance(response, ActionResult):
        status, response_headers, body_text = handler.serialized(response)
    elif isinstance(response, str):
        status, body_text = 200, response
    else:
        status, response_headers, body_text = BaseResponse._transform_response(
            response_headers, response
        )
    response_headers, body_text = BaseResponse._enrich_response(response_headers, body_text)
    # DynamoHandler.call_action is wrapped by amz_crc32: status as an int, crc32 header.
    if "status" in response_headers:
        response_headers["status"] = str(response_headers["status"])
    gen_amz_crc32(body_text, response_headers)
    return status, response_headers, body_text


def _on_before_call(
    model: Any = None,
    params: Any = None,
    request_signer: Any = None,
    **kwargs: Any,
) -> tuple[AWSResponse, dict[str, Any]] | None:
    """botocore hook: answer a DynamoDB data-plane call from moto directly, or defer (None)."""
    if (
        not _patches.is_installed()
        or not botocore_stubber.enabled
        or model is None
        or model.name not in FAST_OPERATIONS
        or settings.INITIAL_NO_AUTH_ACTION_COUNT != _NO_AUTH
        or request_signer is None
        or not _MOCKED_URL.match(str(params.get("url", "")))
    ):
        return None
    metering.record("dynamodb", model.name)
    status, headers, body = _answer(model.name, params, request_signer)
    http = AWSResponse(params["url"], int(status), headers, MockRawResponse(body))
    response_dict = convert_to_response_dict(http, model)
    parser = _response_parser(model.service_model.resolved_protocol)
    parsed = parser.parse(response_dict, model.output_shape)
    if http.status_code >= 300:
        # Endpoint._add_modeled_error_fields: e.g. CancellationReasons, Item.
        code = parsed.get("Error", {}).get("Code")
        error_shape = None if code is None else model.service_model.shape_for_error_code(code)
        if error_shape is not None:
            parsed.update(parser.parse(response_dict, error_shape))
    if "ResponseMetadata" in parsed:
        parsed["ResponseMetadata"]["RetryAttempts"] = 0
    return http, parsed


def _register_builtin() -> None:
    spec = (_EVENT, _on_before_call)
    if spec not in botocore.handlers.BUILTIN_HANDLERS:
        botocore.handlers.BUILTIN_HANDLERS.append(spec)


_patches = ClassPatches(
    "fast_dynamodb",
    (ConditionExpressionParser, "parse", _condition_parse),
    (UpdateExpressionParser, "make", classmethod(_update_make)),
    (UpdateExpressionValidator, "__init__", _validator_init),
    (UpdateExpressionValidator, "validate", _validate),
)
#: Answer DynamoDB data-plane calls directly while moto is active (reference-counted;
#: see :mod:`.patching`). Sessions created after this module was imported carry the
#: hook; it does nothing until installed.
install = _patches.install
#: Undo one :func:`install`.
uninstall = _patches.uninstall
#: Whether the fast path is active.
is_installed = _patches.is_installed
#: Use the fast path inside a ``with`` block.
fast_dynamodb = _patches.active


_register_builtin()
