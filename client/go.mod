module stratuslab.dev/client

go 1.26.0
