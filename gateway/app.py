"""The HTTP gateway: a thin FastAPI front over the Kafka topics.

    POST  /inference              score a text (request-reply through the inference flow)
    POST  /inferences             score many texts in one call (each as by POST /inference)
    GET   /inference/{id}         a result, once known
    PATCH /inference              feedback for an inference (accumulates)
    GET   /experiments[/{name}]   A/B experiments (stored, plus the default one)
    PUT   /experiments/{name}     create or replace an experiment; DELETE removes it
    GET   /experiments/{name}/rollout                    a declared rollout, where it stands
    POST  /experiments/{name}/rollout/{pause|resume|abort}  a person steers it (`flows.rollout`)
    GET   /ui                     the live monitoring dashboard (`gateway.dashboard`)
    GET   /health, /ready, /docs, /metrics (Prometheus: `gateway.metrics`)

The gateway owns no model: it publishes requests and waits for the inference flow's results,
so it scales out as replicas and a slow model never blocks its event loop.

Changing an experiment needs an API key once `DRIFTLINE_API_KEYS` is set (`gateway.auth`), and
so do scoring and feedback with `DRIFTLINE_API_KEYS_FOR_SCORING`. Every error is a `Problem`
body with the request's id, and every status a route can answer is in the OpenAPI document
(`gateway.errors`). Reads never write: the default experiment is shown as the registry makes
it, and stored only by the inference flow that serves it; it always exists, so DELETE of it is
refused (409): replace it with PUT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal
from uuid import UUID

from fastapi import FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from driftline.ab import Experiment
from driftline.ab.rollout import weighted
from driftline.clock import utc_now as now
from driftline.logs import REQUEST_ID
from driftline.settings import Settings
from driftline.tables import INFERENCES
from driftline.topics import (
    FEEDBACK,
    ROLLOUT_COMMANDS,
    Feedback,
    InferenceRequest,
    ModelRef,
    RolloutCommand,
)
from gateway import dashboard, metrics
from gateway.auth import guard
from gateway.bridge import BrokerUnavailable, KafkaBridge
from gateway.errors import RequestContext, install, utf8
from gateway.fastpath import ScoringPath
from gateway.live import MonitoringTail
from gateway.schemas import (
    ExperimentIn,
    FeedbackAccepted,
    FeedbackIn,
    InferenceBatchIn,
    InferenceBatchOut,
    InferenceIn,
    InferenceItemOut,
    InferenceOut,
    Problem,
    RolloutOut,
)
from models.experiments import ExperimentStore, current, missing_models, missing_versions
from models.rollouts import RolloutLog, RolloutRefused, declared, progress

log = logging.getLogger(__name__)

PROBE_TEXT = "driftline readiness probe"
LATER = "fetch it later with GET /inference/{inference_id}"
READY_CACHE_SECONDS = 2.0


def problem(code: int, detail: str, inference_id: UUID | None = None) -> JSONResponse:
    body = Problem(detail=utf8(detail), inference_id=inference_id, request_id=REQUEST_ID.get())
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=code)


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes, each a `Problem` (401 with its challenge)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        out[code] = {"model": Problem, "description": ERRORS[code]}
        if code == 401:
            out[code]["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
            }
    return out


ERRORS = {
    400: "The body could not be read (not UTF-8, or not JSON).",
    401: "No API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
    403: "The API key is not valid.",
    404: "Not found: the named experiment, path or id.",
    409: "Conflict: the default experiment cannot be deleted (replace it with PUT), or the "
    "experiment has no rollout, or its rollout has finished.",
    413: "The body is larger than DRIFTLINE_GATEWAY_MAX_BODY_BYTES.",
    422: "The request breaks the schema, or names a model that is not registered.",
    503: "The broker is unreachable, or the model could not score.",
    504: "No result in time: fetch it later with GET /inference/{inference_id}.",
}
DEFAULT_STAYS = "The default experiment always exists: replace it with PUT, it cannot be deleted."
BODY = (400, 413, 422)
"""What any route that reads a body may answer."""


def error_status(error: str) -> int:
    """The HTTP status of a result's `error`: a name the flow could not find is the client's
    mistake (404 for an experiment, 422 for a model the registry does not know); anything else
    is the server's (503).

    >>> error_status("MlflowException: Registered Model with name=x not found")
    422
    >>> error_status("FetchError: fetching x version 9 failed: mlflow.exceptions.MlflowException: "
    ...              "Model Version (name=x, version=9) not found")
    422
    >>> error_status("unknown experiment 'x'"), error_status("OSError: file not found")
    (404, 503)
    """
    lowered = error.lower()
    if lowered.startswith("unknown experiment"):
        return 404
    registry = "mlflowexception" in lowered  # raised here, or in the child copying a model
    if registry and ("not found" in lowered or "resource_does_not_exist" in lowered):
        return 422
    return 503


def create_app(settings: Settings, bridge: KafkaBridge | None = None) -> FastAPI:
    """The gateway; `bridge` replaces the Kafka bridge in tests."""
    bridge = bridge or KafkaBridge(settings)
    monitoring = MonitoringTail(settings)
    experiments = ExperimentStore.of(settings)
    rollout_log = RolloutLog.of(settings)
    ready_cache: dict[str, Any] = {"at": 0.0, "body": None}
    registered_versions: set[tuple[str, str]] = set()  # versions seen registered: no re-check
    changes = guard(settings.gateway)  # an API key, once keys are configured
    scoring = changes if settings.gateway.api_keys_for_scoring else []
    keyed = (401, 403) if settings.gateway.keys else ()
    scoring_keyed = keyed if scoring else ()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        bridge.start()
        yield
        monitoring.close()
        await asyncio.to_thread(bridge.close)
        folder = os.environ.get(metrics.MULTIPROC_ENV)
        if folder:  # this worker's live gauges stop counting
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), folder)

    app = FastAPI(
        title="driftline gateway",
        version="0.1.0",
        lifespan=lifespan,
        # Our metrics are Prometheus's (`gateway.metrics`): FastAPI's OpenTelemetry hooks
        # off, or every request looks up three providers (5% of the gateway's CPU).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install(app)
    app.include_router(dashboard.router(settings, monitoring))

    async def unknown_experiment(name: str | None) -> bool:
        if name is None or name == settings.ab.default_experiment:
            return False
        return await asyncio.to_thread(experiments.get, name) is None

    async def unregistered(refs: list[ModelRef] | None) -> list[str]:
        """Explicit candidates that are not registered (registered ones are remembered)."""
        wanted = {(r.name, r.version) for r in refs or ()} - registered_versions
        if not wanted:
            return []
        missing = await asyncio.to_thread(missing_versions, settings, sorted(wanted))
        registered_versions.update(wanted - set(missing))
        return [f"no model {name!r} version {version!r}" for name, version in missing]

    async def outcome(body: InferenceIn) -> InferenceItemOut:
        """Route, score and log one text: its status and answer, as `POST /inference` gives."""
        request = InferenceRequest(
            inference_id=uuid.uuid4(),
            created_at=body.created_at or now(),
            data=body.data,
            subject=body.subject,
            log_to_lakehouse=body.log_to_lakehouse,
            experiment=body.experiment,
            models=body.models,
        )

        def failed(status: int, detail: str) -> InferenceItemOut:
            return InferenceItemOut(inference_id=request.inference_id, status=status, detail=detail)

        if await unknown_experiment(body.experiment):
            return failed(404, f"no experiment {body.experiment!r}")
        missing = await unregistered(body.models)
        if missing:
            return failed(422, "; ".join(missing))
        timeout = settings.gateway.inference_timeout
        try:
            result = await bridge.ask(request, timeout)
        except BrokerUnavailable as exc:
            return failed(503, str(exc))
        except TimeoutError:
            return failed(504, f"no result within {timeout:g}s; {LATER}")
        if result.error is not None:
            return failed(error_status(result.error), f"could not score: {result.error}")
        out = InferenceOut.from_result(result)
        return InferenceItemOut(inference_id=request.inference_id, status=200, result=out)

    @app.post(
        "/inference",
        response_model=InferenceOut,
        responses=documented(*BODY, *scoring_keyed, 404, 503, 504),
        dependencies=scoring,
    )
    async def post_inference(body: InferenceIn) -> Response:
        return await respond(body)

    async def respond(body: InferenceIn) -> Response:
        """The answer to one text, as the route and `gateway.fastpath` both send it."""
        item = await outcome(body)
        if item.result is None:
            return problem(item.status, str(item.detail), item.inference_id)
        return Response(item.result.model_dump_json(), media_type="application/json")

    @app.post(
        "/inferences",
        response_model=InferenceBatchOut,
        responses=documented(*BODY, *scoring_keyed),
        dependencies=scoring,
    )
    async def post_inferences(body: InferenceBatchIn) -> Any:
        """Many texts in one call: each is routed, scored and logged exactly like one
        `POST /inference`, and one text that fails does not fail the others."""
        return InferenceBatchOut(results=list(await asyncio.gather(*map(outcome, body.items))))

    @app.get(
        "/inference/{inference_id}",
        response_model=InferenceOut,
        responses=documented(*scoring_keyed, 404, 422, 503),
        dependencies=scoring,
    )
    async def get_inference(inference_id: UUID) -> Any:
        result = bridge.cache.get(inference_id)
        if result is None:
            found = await asyncio.to_thread(_from_lake, settings, inference_id)
            if found is not None:
                return found
            return problem(404, "no result known for this inference id", inference_id)
        if result.error is not None:
            code = error_status(result.error)
            return problem(code, f"could not score: {result.error}", inference_id)
        return InferenceOut.from_result(result)

    @app.patch(
        "/inference",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=FeedbackAccepted,
        responses=documented(*BODY, *scoring_keyed, 503),
        dependencies=scoring,
    )
    async def patch_inference(body: FeedbackIn) -> Any:
        feedback = Feedback(
            feedback_id=uuid.uuid4(),
            inference_id=body.inference_id,
            feedback=body.feedback,
            created_at=now(),
        )
        try:
            await bridge.publish(FEEDBACK, feedback)
        except BrokerUnavailable as exc:
            return problem(503, str(exc), body.inference_id)
        return FeedbackAccepted(inference_id=body.inference_id, feedback_id=feedback.feedback_id)

    @app.get("/experiments", response_model=list[Experiment])
    async def list_experiments() -> Any:
        """Stored experiments, and the default one as the inference flow serves it."""
        found = await asyncio.to_thread(current, settings, experiments)
        return list(found.values())

    @app.get("/experiments/{name}", response_model=Experiment, responses=documented(404, 422))
    async def get_experiment(name: str) -> Any:
        found = await asyncio.to_thread(current, settings, experiments)
        if name not in found:
            return problem(404, f"no experiment {name!r}")
        return found[name]

    @app.put(
        "/experiments/{name}",
        response_model=Experiment,
        responses=documented(*BODY, *keyed),
        dependencies=changes,
    )
    async def put_experiment(name: str, body: ExperimentIn) -> Any:
        """Create or replace; the inference flow routes by it within the refresh interval."""
        fields = body.model_dump(exclude_unset=True)
        if fields.get("rollout") is not None:  # each PUT starts the ramp over
            fields["rollout"]["id"] = uuid.uuid4().hex[:16]
        try:
            experiment = Experiment(name=name, **fields)
        except ValidationError as exc:  # what the schema cannot say: repeated arm names
            reasons = (str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            return problem(422, "; ".join(reasons))
        missing = await asyncio.to_thread(missing_models, settings, experiment)
        if missing:
            return problem(422, "; ".join(missing))
        if experiment.rollout is not None:  # the ramp's first step
            experiment = weighted(experiment, experiment.rollout.steps[0])
        await asyncio.to_thread(experiments.put, experiment)
        return experiment

    # --- Rollouts (issue 13, part 2) ---

    async def with_rollout(name: str, steering: bool = False) -> Experiment | JSONResponse:
        """The stored experiment with a declared rollout, or the problem (404 / 409)."""
        try:
            return await asyncio.to_thread(declared, experiments, rollout_log, name, steering)
        except RolloutRefused as refused:
            return problem(404 if refused.missing else 409, str(refused))

    @app.get(
        "/experiments/{name}/rollout",
        response_model=RolloutOut,
        responses=documented(404, 409, 422),
    )
    async def get_rollout(name: str) -> Any:
        """The declared rollout, its status and step, and every decision taken so far."""
        found = await with_rollout(name)
        if not isinstance(found, Experiment):
            return found
        state = await asyncio.to_thread(progress, found, rollout_log)
        return RolloutOut(experiment=name, **state._asdict())

    @app.post(
        "/experiments/{name}/rollout/{action}",
        status_code=202,
        response_model=RolloutCommand,
        responses=documented(*keyed, 404, 409, 422, 503),
        dependencies=changes,
    )
    async def command_rollout(name: str, action: Literal["pause", "resume", "abort"]) -> Any:
        """Pause, resume or abort a running rollout: the command goes to the rollout flow on
        `monitoring.rollout.commands`, and its decision shows on `monitoring.rollout` (a command
        that does not apply, such as resume while running, decides nothing)."""
        found = await with_rollout(name, steering=True)
        if not isinstance(found, Experiment):
            return found
        command = RolloutCommand(
            command_id=uuid.uuid4(), experiment=name, action=action, created_at=now()
        )
        try:
            await bridge.publish(ROLLOUT_COMMANDS, command)
        except BrokerUnavailable as exc:
            return problem(503, str(exc))
        return command

    # --- end of rollouts ---

    @app.delete(
        "/experiments/{name}",
        status_code=204,
        response_class=Response,
        responses=documented(*keyed, 404, 409, 422),
        dependencies=changes,
    )
    async def delete_experiment(name: str) -> Response:
        """Remove a stored experiment. The default one always exists (requests that name none
        route by it): it cannot be deleted (409), only replaced with PUT."""
        if name == settings.ab.default_experiment:
            return problem(409, DEFAULT_STAYS)
        if not await asyncio.to_thread(experiments.delete, name):
            return problem(404, f"no stored experiment {name!r}")
        return Response(status_code=204)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body, content_type = await asyncio.to_thread(metrics.exposition)
        return Response(body, media_type=content_type)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"description": "not ready, with the reason"}})
    async def ready(request: Request) -> Any:
        if time.monotonic() - ready_cache["at"] > READY_CACHE_SECONDS:
            ready_cache["body"] = await _check_ready(bridge)
            ready_cache["at"] = time.monotonic()
        body = ready_cache["body"]
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    # The last added runs first: RequestContext, then the metrics, then the scoring fast path.
    scoring_route = next(r for r in app.routes if getattr(r, "endpoint", None) is post_inference)
    keys = settings.gateway.keys if scoring else ()
    app.add_middleware(ScoringPath, respond=respond, route=scoring_route, keys=keys)
    app.add_middleware(metrics.MetricsMiddleware)
    app.add_middleware(RequestContext, max_body_bytes=settings.gateway.max_body_bytes)
    return app


async def _check_ready(bridge: KafkaBridge) -> dict[str, Any]:
    """Ready when the broker answers and the inference flow scores a probe end to end."""
    if not await asyncio.to_thread(bridge.broker_reachable):
        return {"ready": False, "broker": False, "inference_flow": False}
    probe = InferenceRequest(
        inference_id=uuid.uuid4(),
        created_at=now(),
        data=PROBE_TEXT,
        log_to_lakehouse=False,
        probe=True,
    )
    try:
        result = await bridge.ask(probe, 3.0)
    except (BrokerUnavailable, TimeoutError) as exc:
        return {"ready": False, "broker": True, "inference_flow": False, "reason": str(exc)}
    body: dict[str, Any] = {"ready": result.error is None, "broker": True, "inference_flow": True}
    if result.error is not None:
        body["reason"] = result.error
    else:
        body["model"] = result.model.model_dump() if result.model else None
    return body


def _from_lake(settings: Settings, inference_id: UUID) -> InferenceOut | None:
    """Look an older result up in the lake (read-only: safe beside the lake writer). DuckDB is
    imported here, on the first such look-up, not by every gateway worker at start."""
    import lakehouse

    try:
        con = lakehouse.connect(settings.lake, read_only=True)
    except Exception:  # no lake yet, or catalog unreadable: nothing to find there
        log.debug("lake not readable", exc_info=True)
        return None
    try:
        row = con.execute(
            "SELECT inference_id, model_name, model_version, prediction, label, created_at "
            f"FROM lake.{INFERENCES.name} WHERE inference_id = ? AND error IS NULL "
            "AND shadow_of IS NULL",  # a shadow arm's answer is never an answer
            [str(inference_id)],
        ).fetchone()
    except Exception:  # no table yet, or a read that failed: nothing found there
        log.warning("lake look-up failed", exc_info=True)
        return None
    finally:
        con.close()
    if row is None:
        return None
    return InferenceOut(
        inference_id=row[0],
        model=ModelRef(name=row[1], version=row[2]),
        prediction=row[3],
        label=row[4],
        created_at=row[5],
    )
