"""Framework integrations, each behind an extra: LangChain (`slimvec[langchain]`) and LlamaIndex
(`slimvec[llama-index]`).

`slimvec.integrations.langchain.SlimvecVectorStore` is a LangChain `VectorStore`;
`slimvec.integrations.llama_index.SlimvecVectorStore` a LlamaIndex vector store. Both sit on a `Collection`
and use only slimvec's public API; nothing in slimvec imports them, and this package imports no framework
until one of its modules is imported.
"""
