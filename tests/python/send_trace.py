#!/usr/bin/env python3
"""Sends one multi-service trace to Skein with the OpenTelemetry Python SDK, as a real
application would, and prints what it sent.

    send_trace.py {grpc|http} ENDPOINT TENANT [--compression {none,gzip}]

ENDPOINT is `http://HOST:PORT` for gRPC and the full `http://HOST:PORT/v1/traces` URL for
HTTP. The tenant goes into the `X-Scope-OrgID` header through the exporter's `headers=`.

Four services (frontend, orders, payments, notifications) each have their own Resource and
TracerProvider, as separate processes would, and pass the W3C trace context to each other
through header dictionaries, so they form ONE trace of parent and child spans across
services, using every span kind. The spans carry attributes of every value type, events
(one recorded with `record_exception`), links (one to a span of a second trace, one to a
remote context), a trace state, an error status with a description, and dropped counts.

Every provider exports through a BatchSpanProcessor and the OTLP exporter, and also records
its finished spans in memory. After flushing and shutting the providers down, the script
prints to stdout a JSON description of every finished span, taken from the SDK's
ReadableSpan objects: `{"spans": [...]}`, one object per span with lowerCamelCase keys
(`traceId`, `spanId`, `parentSpanId` in lowercase hex, ...) and attribute values typed as
in OTLP/JSON (`{"stringValue": ...}`, `{"intValue": <number>}`, `{"bytesValue": <hex>}`,
`{"arrayValue": [...]}`, `{"kvlistValue": [{"key", "value"}]}`, `{}` for an empty value).

It exits non-zero, saying why on stderr, when an export failed, when fewer spans were
exported than finished, or when the SDK logged a warning or error (a retried export, for
example).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"
PROPAGATOR = TraceContextTextMapPropagator()
# What an upstream vendor put into `tracestate`; the SDK carries it to every child span.
UPSTREAM_TRACE_STATE = "skein=t61rcWkgMzE,vendor=opaque-value"
EXPORT_TIMEOUT_SECONDS = 10

# OTLP Span.flags bits, as the SDK's encoder sets them (it sets only these two, not the
# W3C trace flags in bits 0-7).
CONTEXT_HAS_IS_REMOTE = 0x100
CONTEXT_IS_REMOTE = 0x200


class SdkLogRecorder(logging.Handler):
    """Keeps the SDK's warnings and errors: a clean export logs none."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


class RecordingExporter(SpanExporter):
    """Wraps the OTLP exporter and remembers every export's result."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.exported = 0
        self.failures: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result == SpanExportResult.SUCCESS:
            self.exported += len(spans)
        else:
            self.failures.append(f"export of {len(spans)} spans returned {result.name}")
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def otlp_exporter(protocol: str, endpoint: str, tenant: str, compression: str) -> SpanExporter:
    if protocol == "grpc":
        # gRPC metadata keys are lowercase (grpcio refuses others); HTTP/2 sends every
        # header name in lowercase anyway.
        headers = {"x-scope-orgid": tenant}
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=endpoint,
            insecure=True,
            headers=headers,
            timeout=EXPORT_TIMEOUT_SECONDS,
            compression=grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    headers = {"X-Scope-OrgID": tenant}
    return OTLPSpanExporter(
        endpoint=endpoint,
        headers=headers,
        timeout=EXPORT_TIMEOUT_SECONDS,
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
    )


class Service:
    """One service: its Resource, TracerProvider, tracer and exporters."""

    def __init__(self, name: str, args: argparse.Namespace, limits: SpanLimits | None = None) -> None:
        resource = Resource.create(
            {
                "service.name": name,
                "service.version": "2.3.1",
                "service.instance.id": f"{name}-0",
                "deployment.environment.name": "e2e",
                "host.cores": 2,
                "process.runtime.hot": True,
                "cloud.availability_zones": ["zone-a", "zone-b"],
            },
            schema_url=SCHEMA_URL,
        )
        self.provider = TracerProvider(resource=resource, span_limits=limits)
        self.memory = InMemorySpanExporter()
        self.otlp = RecordingExporter(otlp_exporter(args.protocol, args.endpoint, args.tenant, args.compression))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.provider.add_span_processor(BatchSpanProcessor(self.otlp))
        self.tracer = self.provider.get_tracer(
            f"shop.{name}",
            "0.9.0",
            schema_url=SCHEMA_URL,
            attributes={"scope.owner": "team-" + name, "scope.generation": 3},
        )


class CardDeclined(Exception):
    pass


def without_trace_state(ctx: SpanContext) -> SpanContext:
    """The context for a link: the SDK's OTLP encoder does not send a link's trace state
    (opentelemetry-exporter-otlp-proto-common 1.45.2, `_encode_links`), so a link with one
    would differ between what the SDK holds and what it sends."""
    return SpanContext(ctx.trace_id, ctx.span_id, is_remote=ctx.is_remote, trace_flags=ctx.trace_flags)


def inject() -> dict[str, str]:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    return carrier


def every_attribute_type(prefix: str) -> dict:
    """Attribute values of every type the SDK takes, including edge values."""
    return {
        f"{prefix}.str": "checkout ✓ 日本語 \"quoted\" \\ back",
        f"{prefix}.str.empty": "",
        f"{prefix}.bool.true": True,
        f"{prefix}.bool.false": False,
        f"{prefix}.int": 42,
        f"{prefix}.int.negative": -7,
        f"{prefix}.int.max": 2**63 - 1,
        f"{prefix}.int.min": -(2**63),
        f"{prefix}.float": 3.14159,
        f"{prefix}.float.tiny": -1.5e-300,
        f"{prefix}.float.whole": 2.0,
        f"{prefix}.str.list": ["a", "", "ü"],
        f"{prefix}.bool.list": [True, False, True],
        f"{prefix}.int.list": [1, -2, 2**62],
        f"{prefix}.float.list": [0.1, -2.5, 1e300],
        f"{prefix}.bytes": b"\x00\x01\xfe\xff",
        f"{prefix}.map": {"inner.str": "x", "inner.int": 5, "inner.list": [1.5, 2.5]},
        f"{prefix}.mixed.list": [1, "two", 3.0, False],
    }


def frontend(svc: Service, orders: Service, payments: Service, notifications: Service) -> None:
    # A span of another trace, for others to link to.
    with svc.tracer.start_as_current_span(
        "refresh catalog", kind=SpanKind.INTERNAL, context=context_api.Context()
    ) as catalog:
        catalog.set_attribute("catalog.items", 1250)
    catalog_context = catalog.get_span_context()

    with svc.tracer.start_as_current_span(
        "GET /checkout", kind=SpanKind.SERVER, attributes=every_attribute_type("app")
    ) as root:
        root.set_attribute("http.request.method", "GET")
        root.set_attribute("http.response.status_code", 502)
        root.add_event("checkout.started", {"cart.items": 3, "cart.total": 99.5, "cart.skus": ["a1", "b2"]})
        with svc.tracer.start_as_current_span("POST /orders", kind=SpanKind.CLIENT) as client:
            client.set_attribute("url.full", "http://orders/orders")
            carrier = inject()
            carrier["tracestate"] = UPSTREAM_TRACE_STATE
            status = orders_service(orders, payments, notifications, carrier, catalog_context)
            client.set_attribute("http.response.status_code", status)
            client.set_status(Status(StatusCode.ERROR, f"orders answered {status}"))
        root.set_status(Status(StatusCode.ERROR, "checkout failed"))


def orders_service(
    svc: Service, payments: Service, notifications: Service, carrier: dict, catalog_context
) -> int:
    parent = PROPAGATOR.extract(carrier)
    with svc.tracer.start_as_current_span(
        "POST /orders", kind=SpanKind.SERVER, context=parent, attributes={"http.request.method": "POST"}
    ) as server:
        with svc.tracer.start_as_current_span(
            "validate cart",
            kind=SpanKind.INTERNAL,
            links=[Link(catalog_context, {"link.reason": "catalog snapshot", "link.age.seconds": 12.5})],
        ) as validate:
            validate.add_event("cart.loaded", every_attribute_type("event"))
            validate.set_status(Status(StatusCode.OK))
        with svc.tracer.start_as_current_span("POST /charge", kind=SpanKind.CLIENT) as charge:
            status = payments_service(payments, inject(), catalog_context)
            charge.set_attribute("http.response.status_code", status)
            charge.set_status(Status(StatusCode.ERROR, "payment refused"))
        with svc.tracer.start_as_current_span("publish order.created", kind=SpanKind.PRODUCER) as publish:
            publish.set_attribute("messaging.system", "kafka")
            notifications_service(notifications, inject())
        server.set_attribute("http.response.status_code", 502)
        server.set_status(Status(StatusCode.ERROR, "payment step failed"))
    return 502


def payments_service(svc: Service, carrier: dict, catalog_context) -> int:
    parent = PROPAGATOR.extract(carrier)
    caller = without_trace_state(trace.get_current_span(parent).get_span_context())
    # Three links under a limit of two: the SDK keeps two and counts one as dropped.
    links = [
        Link(catalog_context, {"link.n": 1}),
        Link(caller, {"link.n": 2, "link.caller": True}),
        Link(catalog_context, {"link.n": 3}),
    ]
    with svc.tracer.start_as_current_span("POST /charge", kind=SpanKind.SERVER, context=parent, links=links) as server:
        with svc.tracer.start_as_current_span("authorize card", kind=SpanKind.INTERNAL) as authorize:
            authorize.add_event("fraud.check", {"fraud.score": 0.97, "fraud.rules": ["velocity", "geo"]})
            for i in range(5):
                authorize.add_event(f"retry.{i}", {"attempt": i})
            try:
                raise CardDeclined("card declined by issuer: insufficient funds")
            except CardDeclined as exc:
                authorize.record_exception(exc, attributes={"payment.attempt": 2, "payment.retryable": False})
                authorize.set_status(Status(StatusCode.ERROR, f"card declined: {exc}"))
        server.set_attribute("http.response.status_code", 402)
        server.set_status(Status(StatusCode.ERROR, "authorization failed"))
    return 402


def notifications_service(svc: Service, message_headers: dict) -> None:
    producer = PROPAGATOR.extract(message_headers)
    producer_context = without_trace_state(trace.get_current_span(producer).get_span_context())
    with svc.tracer.start_as_current_span(
        "process order.created",
        kind=SpanKind.CONSUMER,
        context=producer,
        links=[Link(producer_context, {"messaging.operation.type": "process"})],
    ):
        with svc.tracer.start_as_current_span("send email", kind=SpanKind.CLIENT) as email:
            email.set_attribute("email.recipients", 1)


def typed(value) -> dict:
    """An attribute value in the OTLP/JSON shape, with its type as the key."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        return {"intValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": value.hex()}
    if isinstance(value, Mapping):
        return {"kvlistValue": attributes(value)}
    if isinstance(value, Sequence):
        return {"arrayValue": [typed(v) for v in value]}
    raise TypeError(f"unexpected attribute value {value!r}")


def attributes(attrs: Mapping | None) -> list[dict]:
    return [{"key": k, "value": typed(v)} for k, v in (attrs or {}).items()]


def span_flags(parent) -> int:
    if parent is not None and parent.is_remote:
        return CONTEXT_HAS_IS_REMOTE | CONTEXT_IS_REMOTE
    return CONTEXT_HAS_IS_REMOTE


def describe(span: ReadableSpan) -> dict:
    ctx = span.get_span_context()
    scope = span.instrumentation_scope
    return {
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
        "parentSpanId": f"{span.parent.span_id:016x}" if span.parent else "",
        "traceState": ",".join(f"{k}={v}" for k, v in ctx.trace_state.items()),
        "flags": span_flags(span.parent),
        "name": span.name,
        "kind": span.kind.name,
        "startTimeUnixNano": span.start_time,
        "endTimeUnixNano": span.end_time,
        "attributes": attributes(span.attributes),
        "droppedAttributesCount": span.dropped_attributes,
        "events": [
            {
                "name": e.name,
                "timeUnixNano": e.timestamp,
                "attributes": attributes(e.attributes),
                "droppedAttributesCount": e.dropped_attributes,
            }
            for e in span.events
        ],
        "droppedEventsCount": span.dropped_events,
        "links": [
            {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
                # Empty here: see without_trace_state.
                "traceState": ",".join(f"{k}={v}" for k, v in link.context.trace_state.items()),
                "flags": span_flags(link.context),
                "attributes": attributes(link.attributes),
                "droppedAttributesCount": link.dropped_attributes,
            }
            for link in span.links
        ],
        "droppedLinksCount": span.dropped_links,
        "status": {"code": span.status.status_code.name, "message": span.status.description or ""},
        # The SDK has no dropped counts for resources and scopes; it always sends zero.
        "resource": {
            "attributes": attributes(span.resource.attributes),
            "droppedAttributesCount": 0,
            "schemaUrl": span.resource.schema_url,
        },
        "scope": {
            "name": scope.name,
            "version": scope.version or "",
            "attributes": attributes(scope.attributes),
            "droppedAttributesCount": 0,
            "schemaUrl": scope.schema_url or "",
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("protocol", choices=["grpc", "http"])
    parser.add_argument("endpoint")
    parser.add_argument("tenant")
    parser.add_argument("--compression", choices=["none", "gzip"], default="none")
    args = parser.parse_args()

    recorder = SdkLogRecorder()
    logging.getLogger("opentelemetry").addHandler(recorder)

    front = Service("frontend", args)
    orders = Service("orders", args)
    payments = Service("payments", args, SpanLimits(max_links=2, max_events=4))
    notifications = Service("notifications", args)
    services = [front, orders, payments, notifications]

    frontend(front, orders, payments, notifications)

    problems: list[str] = []
    for svc in services:
        if not svc.provider.force_flush(timeout_millis=(EXPORT_TIMEOUT_SECONDS + 5) * 1000):
            problems.append("force_flush timed out")
        svc.provider.shutdown()
    finished = [span for svc in services for span in svc.memory.get_finished_spans()]
    for svc in services:
        problems.extend(svc.otlp.failures)
    exported = sum(svc.otlp.exported for svc in services)
    if exported != len(finished):
        problems.append(f"{len(finished)} spans finished but {exported} were exported")
    problems.extend(f"sdk logged: {m}" for m in recorder.messages)
    if problems:
        for p in problems:
            print(f"send_trace.py: {p}", file=sys.stderr)
        return 1

    json.dump({"spans": [describe(s) for s in finished]}, sys.stdout, allow_nan=False, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
