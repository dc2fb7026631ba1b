"""The Kubernetes executor: one `batch/v1` Job per attempt.

- `config`: KubernetesConfig, the one value that says how this cluster is used.
- `manifests`: the attempt's Job and its token Secret, as dicts.
- `dockerfile`: image specs as Dockerfiles, the BuildKit build Job, `plan_image`.
- `outcomes`: what Job and pod status mean for the attempt (`classify`).
- `cluster`: JobCluster, the thin layer over the official client that sends and reads them.

No Django here: the Run/Attempt side calls these and records what they return.
"""
