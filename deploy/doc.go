// Package deploy holds no code: it is where the deployment files live (kubernetes/ for a
// Deployment, prometheus/ for the alerting rules), and its tests validate them. They parse every
// manifest and check the invariants that keep a rotation from being cut short or a problem from
// going unnoticed: a non-root, read-only container, probes on the ops port, a termination grace
// longer than the rotator's shutdown grace, and a PrometheusRule that holds exactly the rules of
// prometheus/rules.yaml, each with a runbook entry in the README. They also check that the image
// gets its version from the build, and run scripts/lambda-invoke against a stand-in aws command.
package deploy
