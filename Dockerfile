# Keyward service image. Build: docker build -t keyward .
# Run (SQLite in a volume): docker run -p 8080:8080 -v keyward-data:/app/data keyward
FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 compiles from source (.npmrc build-from-source): a toolchain is needed here only.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production KEYWARD_HOST=0.0.0.0 KEYWARD_PORT=8080
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
# The dashboard's static files are read when its routes register.
COPY dashboard ./dashboard
COPY package.json LICENSE ./
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s CMD node -e "fetch('http://127.0.0.1:8080/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/keyward.js"]
CMD ["serve"]
