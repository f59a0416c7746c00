/**
 * Unit tests of the pure modules (format, errors, tree, model). They import no
 * @jupyterlab package, so only our TypeScript is transformed; the Lumino
 * packages they use ship CommonJS (UMD) builds that jest loads as they are.
 */
module.exports = {
  testEnvironment: 'node',
  watchman: false,
  roots: ['<rootDir>/src'],
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  moduleFileExtensions: ['ts', 'js', 'json'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  },
  transformIgnorePatterns: ['/node_modules/'],
  collectCoverageFrom: ['src/{format,errors,tree,model}.ts']
};
