module stratuslab.dev/services/marketplace

go 1.26.0

require (
	stratuslab.dev/platform v0.0.0
	stratuslab.dev/proto v0.0.0
)

replace (
	stratuslab.dev/platform => ../../platform
	stratuslab.dev/proto => ../../proto
)
