module stratuslab.dev/stratuslab

go 1.26.0

require (
	stratuslab.dev/client v0.0.0
	stratuslab.dev/platform v0.0.0
	stratuslab.dev/proto v0.0.0
	stratuslab.dev/services/authn v0.0.0
	stratuslab.dev/services/cimi v0.0.0
	stratuslab.dev/services/marketplace v0.0.0
	stratuslab.dev/services/pdisk v0.0.0
	stratuslab.dev/services/registration v0.0.0
	stratuslab.dev/services/vmctl v0.0.0
)

replace (
	stratuslab.dev/client => ./client
	stratuslab.dev/platform => ./platform
	stratuslab.dev/proto => ./proto
	stratuslab.dev/services/authn => ./services/authn
	stratuslab.dev/services/cimi => ./services/cimi
	stratuslab.dev/services/marketplace => ./services/marketplace
	stratuslab.dev/services/pdisk => ./services/pdisk
	stratuslab.dev/services/registration => ./services/registration
	stratuslab.dev/services/vmctl => ./services/vmctl
)
