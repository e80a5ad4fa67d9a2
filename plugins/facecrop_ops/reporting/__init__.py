"""What people watch: per-class miss metrics, their history, the review page, failure mails
and progress lines."""
