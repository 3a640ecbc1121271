"""CloudFormation/SAM template reading for the local runtime.

This module owns three things:

* a YAML loader that understands CloudFormation's short-form intrinsic tags
  (``!Ref``, ``!GetAtt``, ``!Sub`` ...) and turns them into the long form
  (``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``, ...) that CloudFormation itself
  works on, so nothing downstream has to care which form the author used;
* :func:`load_template`, which also applies SAM ``Globals`` to the serverless
  resources the way the SAM transform does;
* :func:`resolve`, a small evaluator of intrinsic functions against a
  :class:`ResolveContext` (parameter values, pseudo parameters, conditions and
  the physical names/attributes of resources the local runtime created).

It deliberately stops short of being a CloudFormation engine: it evaluates
what a function's environment, a resource's properties or a policy needs
locally, and fails loudly (:class:`UnresolvableError`) on anything else.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "NO_VALUE",
    "CfnLoader",
    "ResolveContext",
    "ResourceRef",
    "TemplateError",
    "UnresolvableError",
    "apply_globals",
    "evaluate_conditions",
    "find_references",
    "load_template",
    "load_yaml",
    "resolve",
]

_DEFAULT_ACCOUNT_ID = "123456789012"


class TemplateError(ValueError):
    """The template is malformed (bad YAML, bad intrinsic, duplicate key...)."""


class UnresolvableError(TemplateError):
    """An intrinsic function cannot be evaluated locally."""


# --------------------------------------------------------------------------- #
# YAML loading
# --------------------------------------------------------------------------- #

# Tags whose long form is "Fn::<Name>".
_FN_TAGS = (
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Transform",
    "Length",
    "ToJsonString",
)


class CfnLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that understands CloudFormation templates.

    Differences from the safe loader, each for a CloudFormation reason:

    * short-form intrinsic tags become long-form dicts;
    * timestamps stay strings (``Version: 2012-10-17`` is a string to
      CloudFormation, a ``date`` to plain YAML);
    * duplicate mapping keys are an error (CloudFormation rejects them, YAML
      silently keeps the last one).
    """


# Drop the implicit timestamp resolver (see class docstring).
CfnLoader.yaml_implicit_resolvers = {
    first_char: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first_char, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_node(loader: CfnLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise TemplateError(f"unsupported YAML node {node!r}")  # pragma: no cover


def _construct_mapping_no_duplicates(loader: CfnLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            mark = key_node.start_mark
            raise TemplateError(
                f"duplicate key {key!r} at line {mark.line + 1}, column {mark.column + 1}"
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


def _fn_constructor(name: str) -> Callable[[CfnLoader, yaml.Node], dict[str, Any]]:
    def construct(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
        return {f"Fn::{name}": _construct_node(loader, node)}

    return construct


def _construct_ref(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Ref": _construct_node(loader, node)}


def _construct_condition(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Condition": _construct_node(loader, node)}


def _construct_getatt(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
    value = _construct_node(loader, node)
    if isinstance(value, str):
        # "Resource.Attr.With.Dots": only the first dot separates the logical
        # id; attribute names may contain dots (Endpoint.Address).
        logical_id, sep, attribute = value.partition(".")
        if not sep or not logical_id or not attribute:
            raise TemplateError(f"!GetAtt {value!r} is not of the form Resource.Attribute")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {"Fn::GetAtt": value}


CfnLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_duplicates
)
CfnLoader.add_constructor("!Ref", _construct_ref)
CfnLoader.add_constructor("!Condition", _construct_condition)
CfnLoader.add_constructor("!GetAtt", _construct_getatt)
for _tag in _FN_TAGS:
    CfnLoader.add_constructor(f"!{_tag}", _fn_constructor(_tag))


def load_yaml(text: str) -> Any:
    """Parse CloudFormation YAML (or JSON) text into plain Python objects."""
    try:
        return yaml.load(text, Loader=CfnLoader)
    except yaml.YAMLError as exc:
        raise TemplateError(f"invalid template YAML: {exc}") from exc


def load_template(path: str | Path, *, apply_sam_globals: bool = True) -> dict[str, Any]:
    """Load a CloudFormation/SAM template from ``path``.

    Short-form tags are converted to long form. With ``apply_sam_globals``
    (the default) ``Globals`` are merged into the serverless resources (see
    :func:`apply_globals`) and removed from the result, as the SAM transform
    does before anything else looks at the template.
    """
    document = load_yaml(Path(path).read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources mapping)")
    template: dict[str, Any] = document
    return apply_globals(template) if apply_sam_globals else template


# --------------------------------------------------------------------------- #
# SAM Globals
# --------------------------------------------------------------------------- #

_GLOBALS_SECTIONS = {
    "Function": "AWS::Serverless::Function",
    "Api": "AWS::Serverless::Api",
    "HttpApi": "AWS::Serverless::HttpApi",
    "SimpleTable": "AWS::Serverless::SimpleTable",
    "StateMachine": "AWS::Serverless::StateMachine",
    "LayerVersion": "AWS::Serverless::LayerVersion",
    "CapacityProvider": "AWS::Serverless::CapacityProvider",
}


def _merge_global(global_value: Any, local_value: Any) -> Any:
    """Merge one property the way the SAM transform does.

    Maps merge key by key (recursively, local wins), lists concatenate
    (globals first), scalars and intrinsics are replaced by the local value.
    """
    if _is_intrinsic(global_value) or _is_intrinsic(local_value):
        return copy.deepcopy(local_value)
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        merged = copy.deepcopy(global_value)
        for key, value in local_value.items():
            merged[key] = (
                _merge_global(merged[key], value) if key in merged else copy.deepcopy(value)
            )
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return copy.deepcopy(global_value) + copy.deepcopy(local_value)
    return copy.deepcopy(local_value)


def apply_globals(template: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``template`` with SAM ``Globals`` merged into its resources.

    ``Globals.Function`` goes into every ``AWS::Serverless::Function`` (so
    ``Environment.Variables`` merge by key, ``Layers`` concatenate), and
    likewise for the other Globals sections.
    """
    result = copy.deepcopy(template)
    globals_section = result.pop("Globals", None) or {}
    for section, properties in globals_section.items():
        resource_type = _GLOBALS_SECTIONS.get(section)
        if resource_type is None:
            raise TemplateError(f"unknown Globals section {section!r}")
        for resource in result["Resources"].values():
            if resource.get("Type") != resource_type:
                continue
            resource["Properties"] = _merge_global(properties, resource.get("Properties") or {})
    return result


# --------------------------------------------------------------------------- #
# Intrinsic function evaluation
# --------------------------------------------------------------------------- #


class _NoValue:
    """Sentinel for ``Ref: AWS::NoValue`` (the property is removed)."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()


@dataclass(frozen=True)
class ResourceRef:
    """What ``Ref`` and ``Fn::GetAtt`` return for one resource.

    ``ref`` is the value of ``!Ref`` (a table name, a topic ARN, a queue URL
    ...), ``attributes`` those of ``!GetAtt``. ``unsupported`` is set for
    resources the local runtime cannot host: referencing one raises
    :class:`UnresolvableError` with that explanation.
    """

    logical_id: str
    resource_type: str
    ref: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    unsupported: str | None = None


@dataclass
class ResolveContext:
    """Everything :func:`resolve` may look up."""

    region: str = "us-east-1"
    account_id: str = _DEFAULT_ACCOUNT_ID
    stack_name: str = "autopilot-local"
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"
    parameters: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, ResourceRef] = field(default_factory=dict)
    conditions: Mapping[str, bool] = field(default_factory=dict)
    mappings: dict[str, Any] = field(default_factory=dict)

    @property
    def stack_id(self) -> str:
        """A stable, well-formed stack ARN for ``AWS::StackId``."""
        return (
            f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:"
            f"stack/{self.stack_name}/00000000-0000-0000-0000-000000000000"
        )

    def pseudo_parameters(self) -> dict[str, Any]:
        """Values of the ``AWS::*`` pseudo parameters."""
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.stack_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }

    def lookup_ref(self, name: str) -> Any:
        """Value of ``{"Ref": name}``."""
        pseudo = self.pseudo_parameters()
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self._resource(name)
        if resource.ref is None:
            raise UnresolvableError(f"Ref {name}: {resource.resource_type} has no local Ref value")
        return resource.ref

    def lookup_attribute(self, logical_id: str, attribute: str) -> Any:
        """Value of ``{"Fn::GetAtt": [logical_id, attribute]}``."""
        resource = self._resource(logical_id)
        if attribute not in resource.attributes:
            known = ", ".join(sorted(resource.attributes)) or "none"
            raise UnresolvableError(
                f"GetAtt {logical_id}.{attribute}: attribute not available locally "
                f"for {resource.resource_type} (known: {known})"
            )
        return resource.attributes[attribute]

    def _resource(self, logical_id: str) -> ResourceRef:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise UnresolvableError(f"{logical_id!r} is neither a parameter nor a known resource")
        if resource.unsupported:
            raise UnresolvableError(
                f"{logical_id} ({resource.resource_type}) is referenced but the local runtime "
                f"cannot host it: {resource.unsupported}"
            )
        return resource


_INTRINSIC_KEYS = frozenset({"Ref", "Condition", "Fn::GetAtt"} | {f"Fn::{n}" for n in _FN_TAGS})


def _is_intrinsic(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _INTRINSIC_KEYS


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _resolve_sub(argument: Any, context: ResolveContext) -> str:
    if isinstance(argument, str):
        template, variables = argument, {}
    elif isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
        template = resolve(argument[0], context)
        variables = {name: resolve(value, context) for name, value in argument[1].items()}
    else:
        raise TemplateError(f"Fn::Sub expects a string or [string, map], got {argument!r}")
    if not isinstance(template, str):
        raise TemplateError(f"Fn::Sub template must be a string, got {template!r}")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            # ${!Literal} renders as ${Literal}.
            return "${" + name[1:] + "}"
        name = name.strip()
        if name in variables:
            value = variables[name]
        elif "." in name and name.split(".", 1)[0] not in context.parameters:
            logical_id, attribute = name.split(".", 1)
            value = context.lookup_attribute(logical_id, attribute)
        else:
            value = context.lookup_ref(name)
        if isinstance(value, list | dict) or value is NO_VALUE:
            raise UnresolvableError(f"Fn::Sub variable ${{{name}}} is not a string: {value!r}")
        return _to_str(value)

    return _SUB_VARIABLE.sub(substitute, template)


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _condition_value(name: str, context: ResolveContext) -> bool:
    if name not in context.conditions:
        raise UnresolvableError(f"unknown condition {name!r}")
    return context.conditions[name]


def _fn_if(argument: Any, context: ResolveContext) -> Any:
    if not isinstance(argument, list) or len(argument) != 3:
        raise TemplateError(f"Fn::If expects [condition, then, else], got {argument!r}")
    name, when_true, when_false = argument
    return resolve(when_true if _condition_value(name, context) else when_false, context)


def _fn_join(argument: Any, context: ResolveContext) -> str:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"Fn::Join expects [delimiter, list], got {argument!r}")
    delimiter = resolve(argument[0], context)
    values = resolve(argument[1], context)
    if not isinstance(values, list):
        raise TemplateError(f"Fn::Join expects a list of values, got {values!r}")
    return str(delimiter).join(_to_str(v) for v in values)


def _fn_select(argument: Any, context: ResolveContext) -> Any:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"Fn::Select expects [index, list], got {argument!r}")
    index = int(resolve(argument[0], context))
    values = resolve(argument[1], context)
    if not isinstance(values, list) or not 0 <= index < len(values):
        raise TemplateError(f"Fn::Select index {index} out of range for {values!r}")
    return values[index]


def _fn_split(argument: Any, context: ResolveContext) -> list[str]:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"Fn::Split expects [delimiter, string], got {argument!r}")
    delimiter = resolve(argument[0], context)
    source = resolve(argument[1], context)
    return str(source).split(str(delimiter))


def _fn_find_in_map(argument: Any, context: ResolveContext) -> Any:
    if not isinstance(argument, list) or len(argument) not in (3, 4):
        raise TemplateError(f"Fn::FindInMap expects [map, key, key], got {argument!r}")
    map_name, top_key, second_key = (resolve(a, context) for a in argument[:3])
    try:
        return copy.deepcopy(context.mappings[map_name][top_key][second_key])
    except (KeyError, TypeError):
        if len(argument) == 4 and isinstance(argument[3], dict) and "DefaultValue" in argument[3]:
            return resolve(argument[3]["DefaultValue"], context)
        raise UnresolvableError(
            f"Fn::FindInMap {map_name}/{top_key}/{second_key} not found"
        ) from None


def _fn_equals(argument: Any, context: ResolveContext) -> bool:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"Fn::Equals expects two values, got {argument!r}")
    left, right = (resolve(a, context) for a in argument)
    # CloudFormation compares the string forms (a Number parameter equals "3").
    return _to_str(left) == _to_str(right)


def _as_condition(value: Any, context: ResolveContext) -> bool:
    if isinstance(value, dict) and set(value) == {"Condition"}:
        return _condition_value(value["Condition"], context)
    result = resolve(value, context)
    if not isinstance(result, bool):
        raise TemplateError(f"condition operand is not a boolean: {value!r}")
    return result


def _fn_not(argument: Any, context: ResolveContext) -> bool:
    if not isinstance(argument, list) or len(argument) != 1:
        raise TemplateError(f"Fn::Not expects one condition, got {argument!r}")
    return not _as_condition(argument[0], context)


def _fn_and(argument: Any, context: ResolveContext) -> bool:
    if not isinstance(argument, list) or not 2 <= len(argument) <= 10:
        raise TemplateError(f"Fn::And expects 2 to 10 conditions, got {argument!r}")
    return all(_as_condition(a, context) for a in argument)


def _fn_or(argument: Any, context: ResolveContext) -> bool:
    if not isinstance(argument, list) or not 2 <= len(argument) <= 10:
        raise TemplateError(f"Fn::Or expects 2 to 10 conditions, got {argument!r}")
    return any(_as_condition(a, context) for a in argument)


def _fn_getatt(argument: Any, context: ResolveContext) -> Any:
    if isinstance(argument, str):
        argument = argument.split(".", 1)
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"Fn::GetAtt expects [resource, attribute], got {argument!r}")
    logical_id, attribute = argument[0], resolve(argument[1], context)
    return context.lookup_attribute(logical_id, str(attribute))


def _fn_base64(argument: Any, context: ResolveContext) -> str:
    return base64.b64encode(_to_str(resolve(argument, context)).encode()).decode()


def _fn_get_azs(argument: Any, context: ResolveContext) -> list[str]:
    region = resolve(argument, context) or context.region
    return [f"{region}{suffix}" for suffix in ("a", "b", "c")]


def _fn_to_json_string(argument: Any, context: ResolveContext) -> str:
    return json.dumps(resolve(argument, context), separators=(",", ":"))


def _fn_length(argument: Any, context: ResolveContext) -> int:
    values = resolve(argument, context)
    if not isinstance(values, list):
        raise TemplateError(f"Fn::Length expects a list, got {values!r}")
    return len(values)


def _unresolvable(name: str) -> Callable[[Any, ResolveContext], Any]:
    def fail(argument: Any, context: ResolveContext) -> Any:
        raise UnresolvableError(f"{name} {argument!r} cannot be evaluated locally")

    return fail


_FUNCTIONS: dict[str, Callable[[Any, ResolveContext], Any]] = {
    "Fn::Sub": _resolve_sub,
    "Fn::If": _fn_if,
    "Fn::Join": _fn_join,
    "Fn::Select": _fn_select,
    "Fn::Split": _fn_split,
    "Fn::FindInMap": _fn_find_in_map,
    "Fn::Equals": _fn_equals,
    "Fn::Not": _fn_not,
    "Fn::And": _fn_and,
    "Fn::Or": _fn_or,
    "Fn::GetAtt": _fn_getatt,
    "Fn::Base64": _fn_base64,
    "Fn::GetAZs": _fn_get_azs,
    "Fn::ToJsonString": _fn_to_json_string,
    "Fn::Length": _fn_length,
    "Fn::ImportValue": _unresolvable("Fn::ImportValue (another stack's export)"),
    "Fn::Cidr": _unresolvable("Fn::Cidr"),
    "Fn::Transform": _unresolvable("Fn::Transform (a macro)"),
}


def resolve(value: Any, context: ResolveContext) -> Any:
    """Evaluate every intrinsic function in ``value`` against ``context``.

    Returns a new structure; ``value`` is not modified. Properties and list
    items that evaluate to ``AWS::NoValue`` are dropped, as CloudFormation
    does. Raises :class:`UnresolvableError` for references the context cannot
    answer (unknown names, resources the local runtime cannot host,
    ``Fn::ImportValue``...).
    """
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return context.lookup_ref(str(resolve(argument, context)))
            if key == "Condition" and isinstance(argument, str):
                return _condition_value(argument, context)
            function = _FUNCTIONS.get(key)
            if function is not None:
                return function(argument, context)
        resolved: dict[str, Any] = {}
        for key, item in value.items():
            result = resolve(item, context)
            if result is not NO_VALUE:
                resolved[key] = result
        return resolved
    if isinstance(value, list):
        return [r for r in (resolve(item, context) for item in value) if r is not NO_VALUE]
    return value


class _LazyConditions(Mapping[str, bool]):
    """Template conditions evaluated on first use (they may reference each other)."""

    def __init__(self, definitions: Mapping[str, Any], context: ResolveContext) -> None:
        self._definitions = definitions
        self._context = replace(context, conditions=self)
        self._results: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    def __getitem__(self, name: str) -> bool:
        if name not in self._results:
            if name not in self._definitions:
                raise KeyError(name)
            if name in self._evaluating:
                raise TemplateError(f"condition {name!r} depends on itself")
            self._evaluating.add(name)
            try:
                value = resolve(self._definitions[name], self._context)
            finally:
                self._evaluating.discard(name)
            if not isinstance(value, bool):
                raise TemplateError(f"condition {name!r} does not evaluate to a boolean")
            self._results[name] = value
        return self._results[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._definitions)

    def __len__(self) -> int:
        return len(self._definitions)


def evaluate_conditions(template: Mapping[str, Any], context: ResolveContext) -> dict[str, bool]:
    """Evaluate the template's ``Conditions`` section against ``context``.

    Conditions may reference each other (``!Condition``); a cycle is an error.
    """
    lazy = _LazyConditions(dict(template.get("Conditions") or {}), context)
    return {name: lazy[name] for name in lazy}


def find_references(value: Any) -> set[str]:
    """Logical ids/parameter names referenced by ``value`` (Ref, GetAtt, Sub).

    Pseudo parameters are left out. Used to order resource creation and to
    find which resources a function's environment depends on.
    """
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if len(node) == 1:
                ((key, argument),) = node.items()
                if key == "Ref" and isinstance(argument, str):
                    found.add(argument)
                    return
                if key == "Fn::GetAtt":
                    if isinstance(argument, str):
                        found.add(argument.split(".", 1)[0])
                    elif isinstance(argument, list) and argument and isinstance(argument[0], str):
                        found.add(argument[0])
                    return
                if key == "Fn::Sub":
                    template = argument if isinstance(argument, str) else (argument or [None])[0]
                    local_names: set[str] = set()
                    if isinstance(argument, list) and len(argument) == 2:
                        local_names = set(argument[1] or {})
                        visit(argument[1])
                    if isinstance(template, str):
                        for match in _SUB_VARIABLE.finditer(template):
                            name = match.group(1).strip()
                            if name.startswith("!"):
                                continue
                            root = name.split(".", 1)[0]
                            if name not in local_names and root not in local_names:
                                found.add(root)
                    else:
                        visit(template)
                    return
            for item in node.values():
                visit(item)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(value)
    return {name for name in found if not name.startswith("AWS::")}


def function_statements(template: Mapping[str, Any], function_id: str) -> list[dict[str, Any]]:
    """The IAM statements a function's code runs with.

    Inline ``Policies`` documents of the function and the policies of the role its
    ``Role`` property names (``!GetAtt <Role>.Arn``), in template order.
    """
    resources = template["Resources"]
    properties = resources[function_id].get("Properties") or {}
    documents: list[Any] = [p for p in properties.get("Policies") or [] if isinstance(p, dict)]
    role = properties.get("Role")
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        role_properties = resources[role["Fn::GetAtt"][0]].get("Properties") or {}
        documents += [p.get("PolicyDocument") for p in role_properties.get("Policies") or []]
    return [s for document in documents if document for s in document.get("Statement", [])]
