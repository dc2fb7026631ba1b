"""The SDK as this server publishes it: its wheel, `chalkweb-sdk` (distribution.py), the
package index that serves it at /simple/ (index.py), and the runner archive run images get
(runtime_bundle.py), all built from this server's own `chalkcompute` and `chalk`. Below `runs`,
whose executors and runner API hand the archive out; nothing here knows about runs."""
