"""The Kubernetes executor: one `batch/v1` Job per attempt.

- `config`: KubernetesConfig, the one value that says how this cluster is used.
- `manifests`: the attempt's Job and its token Secret, as dicts.
- `dockerfile`: image specs as Dockerfiles, the BuildKit build Job, `plan_image`.
- `outcomes`: what Job and pod status mean for the attempt (`classify`).
- `cluster`: JobCluster, the thin layer over the official client that sends and reads them.

Every run image gets the runner from `sdk.runtime_bundle` (also pure), which the runner API
serves to pods that install at start.

No Django in those: they are tested without a database. The Django side calls them and
records what they return on the models:

- `executor`: KubernetesExecutor (`run`, `cancel`) and the settings that build the above.
- `builds`: ImageBuild rows for the cluster's image builds.
- `reconcile`: the periodic pass that records what the cluster did to each attempt.
- `watcher`: follows attempt Job events and records each change as it happens.
"""
