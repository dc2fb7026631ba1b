"""Image builds on the cluster, recorded as ImageBuild rows (executor "kubernetes") so their
state and build log show like a run's.

One BuildKit Job per Dockerfile hash (`dockerfile.plan_image`). The row's `artifact` is the
tag it builds: a plan with another tag (a new Chalkweb runtime, a new base image digest) is
another image, and is built again. Runs wait while their image builds; see `reconcile`.
"""

import datetime as dt

from django.db import transaction

from runs.executors.kubernetes.cluster import JobCluster, own_pods
from runs.executors.kubernetes.dockerfile import (
    BUILD_CONTAINER,
    PUSH_CONTAINER,
    ImagePlan,
    plan_image,
)
from runs.executors.kubernetes.manifests import UnsupportedSpecError
from runs.executors.kubernetes.outcomes import SUCCEEDED, classify
from runs.models import ImageBuild, ImageBuildStatus
from scheduling.models import Image

EXECUTOR = "kubernetes"
MAX_BUILD_LOG_CHARS = 200_000  # the end of the log is where a build says why it failed
FAILURE_TAIL_LINES = 15
# A failed build is tried again by the first run that needs it this long after it failed:
# a registry hiccup heals, while a broken spec does not start a build for every run.
REBUILD_AFTER = dt.timedelta(minutes=10)


def build_start(*, plan: ImagePlan, image: Image, cluster: JobCluster, now) -> ImageBuild:
    """The image's build for `plan`, started if needed; its status says what to do next.

    1. No build yet: records it and creates the build Job in one transaction, so two workers
       starting runs of one new image start one build, and the reconcile pass never sees a
       `building` row without its Job.
    2. Ready or building for this plan, or failed less than REBUILD_AFTER ago: as it is.
    3. Failed before that, or made for another plan: deletes the old build Job (a Job of the
       same name would be adopted, failure and all) and builds again.
    """
    with transaction.atomic():
        build, created = ImageBuild.objects.select_for_update().get_or_create(
            image=image,
            executor=EXECUTOR,
            defaults={
                "status": ImageBuildStatus.BUILDING,
                "artifact": plan.image_ref,
                "started_at": now,
            },
        )
        if created:
            cluster.create_build(plan)
            return build
        if build.artifact == plan.image_ref:
            if build.status in (ImageBuildStatus.READY, ImageBuildStatus.BUILDING):
                return build
            if build.finished_at and now - build.finished_at < REBUILD_AFTER:
                return build
        cluster.delete(plan.build_name)
        build.status = ImageBuildStatus.BUILDING
        build.artifact = plan.image_ref
        build.log = ""
        build.started_at = now
        build.finished_at = None
        build.save(update_fields=["status", "artifact", "log", "started_at", "finished_at"])
        cluster.create_build(plan)
    return build


def builds_reconcile(*, cluster: JobCluster, now) -> int:
    """Records the end of every build in progress: ready or failed, with its log. Returns how
    many ended."""
    ended = 0
    building = ImageBuild.objects.filter(executor=EXECUTOR, status=ImageBuildStatus.BUILDING)
    for build in building.select_related("image"):
        try:
            plan = plan_image(build.image.spec, cluster.config)
        except UnsupportedSpecError as exc:
            ended += _end(build, ImageBuildStatus.FAILED, f"build failed: {exc}\n", now)
            continue
        if plan.image_ref != build.artifact:
            continue  # started under other settings; the next run that needs it starts it anew
        job, pods = cluster.observe(plan.build_name)
        if job is None:
            words = (
                f"build failed: its Job {plan.build_name} is gone (deleted by hand, or removed "
                "by its TTL before Chalkweb read its outcome)"
            )
            ended += _end(build, ImageBuildStatus.FAILED, words + "\n", now)
            continue
        outcome = classify(
            job, own_pods(job, pods), now=now, created_at=build.started_at, config=cluster.config
        )
        if outcome is None:
            continue
        # The build's log, then the push's (empty when the build failed: it never started).
        log = cluster.read_log(plan.build_name, BUILD_CONTAINER) + cluster.read_log(
            plan.build_name, PUSH_CONTAINER
        )
        if outcome.status == SUCCEEDED:
            ended += _end(build, ImageBuildStatus.READY, f"{log}\nbuilt {plan.image_ref}\n", now)
        else:
            ended += _end(
                build, ImageBuildStatus.FAILED, f"{log}\nbuild failed: {outcome.reason}\n", now
            )
    return ended


def _end(build: ImageBuild, status: str, log: str, now) -> int:
    # Conditional on the build this pass looked at, so a rebuild started meanwhile is not
    # overwritten by its predecessor's outcome.
    return ImageBuild.objects.filter(
        id=build.id, status=ImageBuildStatus.BUILDING, started_at=build.started_at
    ).update(status=status, log=log[-MAX_BUILD_LOG_CHARS:], finished_at=now)


def build_failure(build: ImageBuild) -> str:
    """A failed build as an attempt's reason: the end of its log, where the error is."""
    lines = [line for line in build.log.splitlines() if line.strip()]
    return "image build failed; the end of its log:\n" + "\n".join(lines[-FAILURE_TAIL_LINES:])
