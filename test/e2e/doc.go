// Package e2e runs the all-in-one cloud as its own process, as a user
// would, and checks whole scenarios against it: discovery, health, crash
// recovery, and (as the services grow) the user tutorials.
package e2e
