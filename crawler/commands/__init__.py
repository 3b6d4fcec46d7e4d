"""Project commands (COMMANDS_MODULE): they override Scrapy's of the same name."""
