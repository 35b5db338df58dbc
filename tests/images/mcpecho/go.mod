module example.test/mcpecho

go 1.21
