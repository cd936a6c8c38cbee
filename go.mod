module stratuslab.dev/stratuslab

go 1.26.0
