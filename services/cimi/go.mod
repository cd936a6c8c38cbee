module stratuslab.dev/services/cimi

go 1.26.0

require (
	stratuslab.dev/platform v0.0.0
	stratuslab.dev/proto v0.0.0
)

require (
	github.com/google/uuid v1.6.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace (
	stratuslab.dev/platform => ../../platform
	stratuslab.dev/proto => ../../proto
)
