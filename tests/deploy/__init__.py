"""The deployment files (Dockerfile, docker-compose.yml, deploy/nginx) checked against the real tools."""
